"""ament_python build for colcon; pip metadata lives in pyproject.toml."""

from glob import glob

from setuptools import setup

PACKAGE = 'ptr'

setup(
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml')),
        (f'share/{PACKAGE}/config/robots', glob('config/robots/*.yaml')),
        (f'share/{PACKAGE}/config/train', glob('config/train/*.yaml')),
        (f'share/{PACKAGE}/config/benchmark', glob('config/benchmark/*.yaml')),
    ],
    python_requires='>=3.10',  # here, not in pyproject: colcon literal_evals setup() args
    zip_safe=True,
)
