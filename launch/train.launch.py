"""Ingest bags (when given) and train a policy: ``ros2 launch ptr train.launch.py``.

  ros2 launch ptr train.launch.py config:=config/train/debug.yaml datasets:=data/pick \
      output:=runs/pick
  ros2 launch ptr train.launch.py bags:=bags/day1,bags/day2 \
      profile:=config/robots/ur5e_two_cam.yaml output:=runs/ur5e gpus:=4 device:=cuda

With ``gpus > 1`` training runs under ``torchrun`` (``python -m torch.distributed.run``). The
launch exits by itself when training ends: 0 after a final checkpoint, 1 with one error line
when ingest or training failed (training never starts after a failed ingest).
"""

from __future__ import annotations

import shlex

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
from ptr_core.errors import PtrError
from ptr_ros.commands import plan_training, split_list

_NEXT = {'ingest': 'not training', 'train': 'no final checkpoint'}
GRACE_S = '30'


def _failed(step: str, returncode: int) -> PtrError:
    """Raised from an exit handler: ``ros2 launch`` logs it as one line and exits 1."""
    return PtrError(f'ptr {step} failed (exit {returncode}); {_NEXT[step]}')


def _actions(context: LaunchContext) -> list:
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    plan = plan_training(
        config=arg('config'), output=arg('output'), datasets=split_list(arg('datasets')),
        bags=split_list(arg('bags')), profile=arg('profile'), dataset_out=arg('dataset_out'),
        device=arg('device'), gpus=int(arg('gpus')), extra=split_list(arg('extra_args')),
    )
    # Ctrl-C: each step gets GRACE_S to exit after SIGINT before SIGTERM (launch's default, 5 s,
    # is less than torch's interpreter teardown takes on a loaded machine).
    grace = LaunchConfiguration('sigterm_timeout', default=GRACE_S)
    train = ExecuteProcess(cmd=plan.train, name='ptr_train', output='screen',
                           sigterm_timeout=grace)
    shown = [LogInfo(msg=f'{step} command: {shlex.join(cmd)}')
             for step, cmd in (('ingest', plan.ingest), ('train', plan.train)) if cmd]

    def after_train(event, ctx):  # type: ignore[no-untyped-def]
        if ctx.is_shutdown:  # stopped by Ctrl-C: the launch is already on its way out
            return None
        if event.returncode != 0:
            raise _failed('train', event.returncode)
        return [LogInfo(msg='training finished'), EmitEvent(event=Shutdown(reason='done'))]

    stop_after_train = RegisterEventHandler(OnProcessExit(target_action=train,
                                                          on_exit=after_train))
    if plan.ingest is None:
        return [*shown, train, stop_after_train]
    ingest = ExecuteProcess(cmd=plan.ingest, name='ptr_ingest', output='screen',
                            sigterm_timeout=grace)

    def after_ingest(event, ctx):  # type: ignore[no-untyped-def]
        if ctx.is_shutdown:
            return None
        if event.returncode != 0:
            raise _failed('ingest', event.returncode)
        return [train, stop_after_train]

    return [*shown, ingest,
            RegisterEventHandler(OnProcessExit(target_action=ingest, on_exit=after_ingest))]


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
