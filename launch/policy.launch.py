"""Serve a checkpoint on an arm: ``ros2 launch ptr policy.launch.py checkpoint:=DIR``.

  ros2 launch ptr policy.launch.py checkpoint:=runs/pick/final
  ros2 launch ptr policy.launch.py checkpoint:=runs/pick/final sim:=true       # + simulated arm
  ros2 service call /policy_node/enable std_srvs/srv/SetBool "{data: true}"    # then it moves
  ros2 launch ptr policy.launch.py checkpoint:=runs/pick/final autostart:=false
  ros2 launch ptr policy.launch.py checkpoint:=runs/pick/final cadence_log:=logs/cadence.jsonl
  ros2 lifecycle set /policy_node configure && ros2 lifecycle set /policy_node activate

The policy node is a managed (lifecycle) node: with ``autostart:=true`` (the default) it
configures (loads and warms up the checkpoint) and activates itself; with ``autostart:=false`` it
waits unconfigured for a lifecycle manager. Active, it still starts disabled. With
``sim:=true`` a ``sim_arm_node`` built from the checkpoint's robot profile publishes joint
states and camera images and follows the commands.
"""

from __future__ import annotations

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare('ptr')
    checkpoint = LaunchConfiguration('checkpoint')
    log_level = ['--ros-args', '--log-level', LaunchConfiguration('log_level')]
    # Ctrl-C: each node gets this long to exit after SIGINT before SIGTERM (launch's default,
    # 5 s, is less than torch + Fast DDS teardown has taken on a loaded machine).
    grace = LaunchConfiguration('sigterm_timeout', default='20')
    policy = Node(
        package='ptr', executable='policy_node', name='policy_node',
        namespace=LaunchConfiguration('namespace'), output='screen', emulate_tty=True,
        parameters=[
            LaunchConfiguration('params_file'),
            {
                'checkpoint': checkpoint,
                'device': LaunchConfiguration('device'),
                'command_interface': LaunchConfiguration('command_interface'),
                'autostart': LaunchConfiguration('autostart'),
                'cadence_log': ParameterValue(LaunchConfiguration('cadence_log'), value_type=str),
            },
        ],
        arguments=log_level, sigterm_timeout=grace,
    )
    sim = Node(
        package='ptr', executable='sim_arm_node', name='sim_arm',
        namespace=LaunchConfiguration('namespace'), output='screen', emulate_tty=True,
        parameters=[LaunchConfiguration('sim_params_file'), {'profile': checkpoint}],
        arguments=log_level, sigterm_timeout=grace,
        condition=IfCondition(LaunchConfiguration('sim')),
    )
    return LaunchDescription([
        DeclareLaunchArgument(
            'checkpoint', description='Checkpoint directory to serve (safetensors + JSON).'),
        DeclareLaunchArgument(
            'params_file', default_value=PathJoinSubstitution([share, 'config', 'policy.yaml']),
            description='policy_node parameters YAML.'),
        DeclareLaunchArgument(
            'device', default_value='cpu', description='Inference device: cpu, cuda, cuda:N.'),
        DeclareLaunchArgument(
            'command_interface', default_value='trajectory', choices=['trajectory', 'forward'],
            description='trajectory: JointTrajectory to joint_trajectory_controller; forward: '
                        'Float64MultiArray to forward_position_controller.'),
        DeclareLaunchArgument(
            'autostart', default_value='true', choices=['true', 'false'],
            description='true: policy_node configures and activates itself; false: it waits '
                        'unconfigured for lifecycle transitions (ros2 lifecycle set, a '
                        'lifecycle manager).'),
        DeclareLaunchArgument(
            'cadence_log', default_value='',
            description='A file policy_node appends its cadence to, one JSON line per window '
                        '(ptr report --cadence FILE); empty: off. Wins over params_file.'),
        DeclareLaunchArgument(
            'sim', default_value='false', choices=['true', 'false'],
            description="Also start sim_arm_node (a kinematic arm with the checkpoint's "
                        'joints and cameras) for the policy to drive.'),
        DeclareLaunchArgument(
            'sim_params_file',
            default_value=PathJoinSubstitution([share, 'config', 'sim_arm.yaml']),
            description='sim_arm_node parameters YAML.'),
        DeclareLaunchArgument(
            'namespace', default_value='', description='Namespace for both nodes.'),
        DeclareLaunchArgument(
            'log_level', default_value='info', description='Node log level.'),
        policy,
        sim,
    ])
