"""ament_python build for colcon; pip metadata lives in pyproject.toml.

setuptools >= 61 reads name, version, packages and console scripts from pyproject.toml. Older
setuptools (ROS 2 Humble ships 59) ignores pyproject's [project] table, so for it the same
essentials are given here; keep the two in step.
"""

from glob import glob

import setuptools
from setuptools import find_packages, setup

PACKAGE = 'ptr'

legacy: dict[str, object] = {}
if int(setuptools.__version__.split('.')[0]) < 61:
    legacy = {
        'name': PACKAGE,
        'version': '0.1.0',
        'packages': find_packages(
            include=['bag_tools*', 'ptr_core*', 'ptr_ros*', 'ptr_sim*', 'ptr_cli*'],
        ),
        'package_data': {'ptr_sim': ['configs/*.yaml'], 'ptr_cli': ['report_page/assets/*']},
        'entry_points': {
            'console_scripts': [
                'ptr = ptr_cli.main:main',
                'policy_node = ptr_ros.policy_node:main',
                'sim_arm_node = ptr_ros.sim_arm_node:main',
                'metaworld_arm_node = ptr_ros.metaworld_arm_node:main',
            ],
        },
    }

setup(
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml')),
        (f'share/{PACKAGE}/config/robots', glob('config/robots/*.yaml')),
        (f'share/{PACKAGE}/config/train', glob('config/train/*.yaml')),
    ],
    python_requires='>=3.10',  # here, not in pyproject: colcon literal_evals setup() args
    zip_safe=True,
    **legacy,  # type: ignore[arg-type]
)
