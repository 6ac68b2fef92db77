"""The ``skiff`` command: one module per noun, registered here."""

from __future__ import annotations

import click

from .app import app_group
from .deploy import deploy_command, serve_command
from .run import run_command
from .secret import secret_group
from .server import server_group
from .token import token_group
from .usage import usage_command
from .volume import volume_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="skiff", prog_name="skiff")
def cli() -> None:
    """skiff runs your Python functions in containers on your own machines.

    \b
    Quick start:
      skiff run hello.py                  run an app's local entrypoint
      skiff run hello.py::square --x 3    call one function
      skiff deploy app.py                 deploy it: web endpoints, schedules
      skiff serve app.py                  serve web endpoints with live reload
      skiff app list                      see apps, versions and URLs
      skiff app logs APP -f               follow an app's logs
      skiff secret create NAME K=V        store a secret for functions
      skiff volume put VOL FILE           upload to a volume
      skiff usage --since 7d              container time per function
    """


cli.add_command(run_command)
cli.add_command(deploy_command)
cli.add_command(serve_command)
cli.add_command(app_group)
cli.add_command(secret_group)
cli.add_command(volume_group)
cli.add_command(token_group)
cli.add_command(usage_command)
cli.add_command(server_group)


def main() -> None:
    cli(prog_name="skiff")
