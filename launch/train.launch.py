"""Ingest bags (when given) and train a policy: ``ros2 launch ptr train.launch.py``.

  ros2 launch ptr train.launch.py config:=config/train/debug.yaml datasets:=data/pick \
      output:=runs/pick
  ros2 launch ptr train.launch.py bags:=bags/day1,bags/day2 \
      profile:=config/robots/ur5e_two_cam.yaml output:=runs/ur5e gpus:=4 device:=cuda

With ``gpus > 1`` training runs under ``torchrun`` (``python -m torch.distributed.run``).
"""

from __future__ import annotations

from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from launch import LaunchContext, LaunchDescription
from ptr_ros.commands import plan_training, split_list


def _actions(context: LaunchContext) -> list:
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    plan = plan_training(
        config=arg('config'), output=arg('output'), datasets=split_list(arg('datasets')),
        bags=split_list(arg('bags')), profile=arg('profile'), dataset_out=arg('dataset_out'),
        device=arg('device'), gpus=int(arg('gpus')), extra=split_list(arg('extra_args')),
    )
    train = ExecuteProcess(cmd=plan.train, name='ptr_train', output='screen')
    stop_after_train = RegisterEventHandler(OnProcessExit(
        target_action=train,
        on_exit=[LogInfo(msg='training finished'), EmitEvent(event=Shutdown(reason='done'))],
    ))
    if plan.ingest is None:
        return [train, stop_after_train]
    ingest = ExecuteProcess(cmd=plan.ingest, name='ptr_ingest', output='screen')

    def after_ingest(event, _context):  # type: ignore[no-untyped-def]
        if event.returncode != 0:
            return [LogInfo(msg=f'ptr ingest failed (exit {event.returncode}); not training'),
                    EmitEvent(event=Shutdown(reason='ingest failed'))]
        return [train, stop_after_train]

    return [ingest, RegisterEventHandler(OnProcessExit(target_action=ingest,
                                                       on_exit=after_ingest))]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare('ptr')
    return LaunchDescription([
        DeclareLaunchArgument(
            'config', default_value=PathJoinSubstitution([share, 'config', 'train', 'debug.yaml']),
            description='Training config YAML (config/train/*.yaml).'),
        DeclareLaunchArgument(
            'datasets', default_value='',
            description='Dataset directories to train on, comma or space separated.'),
        DeclareLaunchArgument(
            'bags', default_value='',
            description='Bags (files, rosbag2 folders or folders of bags) to ingest first, '
                        'comma or space separated; needs profile.'),
        DeclareLaunchArgument(
            'profile', default_value='',
            description='Robot profile YAML for ingesting bags (config/robots/*.yaml).'),
        DeclareLaunchArgument(
            'dataset_out', default_value='',
            description='Where ingested bags go; default <output>/dataset.'),
        DeclareLaunchArgument(
            'output', default_value='runs/train', description='Run directory (checkpoints).'),
        DeclareLaunchArgument(
            'device', default_value='auto', description='Training device: auto, cpu, cuda.'),
        DeclareLaunchArgument(
            'gpus', default_value='1',
            description='GPUs on this machine; > 1 trains with torchrun (DDP), one process each.'),
        DeclareLaunchArgument(
            'extra_args', default_value='',
            description="Extra 'ptr train' arguments, e.g. \"--set steps=2000 --init ckpt\"."),
        OpaqueFunction(function=_actions),
    ])
