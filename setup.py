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
    ],
    zip_safe=True,
)
