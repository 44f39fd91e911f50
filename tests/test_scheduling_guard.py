"""The conftest's scheduling guard: a test that changes the thread's policy fails, restored."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, 'sched_setscheduler'), reason='Linux only')

_INNER = """
import os

def test_changes_the_policy():
    os.sched_setscheduler(0, os.{policy}, os.sched_param(0))

def test_leaves_it_alone():
    assert True
"""


def test_a_test_that_changes_the_scheduling_policy_fails_and_it_is_restored(
        pytester: pytest.Pytester) -> None:
    pytester.makeconftest((Path(__file__).parent / 'conftest.py').read_text())
    before = os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
    target = 'SCHED_BATCH' if before[0] != os.SCHED_BATCH else 'SCHED_OTHER'
    pytester.makepyfile(test_inner=_INNER.format(policy=target))
    result = pytester.runpytest_inprocess('-p', 'no:cacheprovider', '-p', 'no:launch_pytest')
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(['*test_changes_the_policy*',
                                 f'*left the test thread at {target} priority 0 (was *'])
    assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before
