"""``read_json`` / ``read_yaml``: every way a user's file can be unreadable is one line naming it
(and the caller's error family); the libraries' loaders read through them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bag_tools.errors import BagToolsError, ProfileError
from bag_tools.fileio import read_json, read_yaml
from bag_tools.profile import load_profile
from ptr_core.configuration import load_config
from ptr_core.errors import ConfigError


@pytest.mark.parametrize(('content', 'reason'), [
    (None, 'cannot read thing: no such file'),
    ('folder', 'cannot read thing: a folder, not a file'),
    (b'\xff\xfe{}', 'cannot read thing: not UTF-8 text'),
    ('{"a": ', 'not valid JSON (thing)'),
    ('[' * 100000, 'not valid JSON (thing)'),
    ('[1, 2]', 'expected a thing with a dict at the top level, got list'),
])
def test_read_json_names_the_file_and_why(tmp_path: Path, content: object, reason: str) -> None:
    path = tmp_path / 'x.json'
    if content == 'folder':
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    with pytest.raises(BagToolsError) as err:
        read_json(path, 'thing')
    line = str(err.value)
    assert line.startswith(f'{path}: ')
    assert reason in line
    assert '\n' not in line


@pytest.mark.parametrize(('text', 'reason'), [
    ('a: [1, 2', 'not valid YAML (thing)'),
    ('- 1\n- 2\n', 'expected a thing with a dict at the top level, got list'),
    ('&a [*a]', 'got list'),  # a self-referencing alias: refused by type, not a crash
])
def test_read_yaml_names_the_file_and_why(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / 'x.yaml'
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(reason)):
        read_yaml(path, 'thing', error=ConfigError)


def test_an_empty_yaml_gives_the_default_and_a_good_one_its_data(tmp_path: Path) -> None:
    path = tmp_path / 'x.yaml'
    path.write_text('')
    assert read_yaml(path, empty={}) == {}
    path.write_text('a: 1\n')
    assert read_yaml(path) == {'a': 1}


def test_the_loaders_raise_their_own_family(tmp_path: Path) -> None:
    bad = tmp_path / 'bad.yaml'
    bad.write_bytes(b'robot: \xff\n')
    with pytest.raises(ProfileError, match='cannot read robot profile: not UTF-8'):
        load_profile(bad)
    with pytest.raises(ConfigError, match='cannot read training config: not UTF-8'):
        load_config(bad)
    bad.write_text('- steps\n')
    with pytest.raises(ConfigError, match='expected a training config with a dict'):
        load_config(bad)
