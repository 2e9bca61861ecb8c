"""The local Dagster instance folder (DAGSTER_HOME) of the demo, `make dev` and the tests.

Dagster's telemetry is on unless the instance turns it off: the CLI then keeps usage logs
under DAGSTER_HOME/logs, and `dagster dev` uploads them to telemetry.dagster.io. Every
instance made here turns it off, so that nothing leaves the machine.
"""

from pathlib import Path

INSTANCE_YAML = "telemetry:\n  enabled: false\n"

# Read by dagster's uploader: with it set, nothing is uploaded whatever dagster.yaml says.
NO_TELEMETRY_ENV = {"DAGSTER_DISABLE_TELEMETRY": "1"}


def prepare_dagster_home(path: Path) -> Path:
    """Create the folder with a dagster.yaml that turns telemetry off; return its absolute
    path, which DAGSTER_HOME must be. An existing dagster.yaml is kept as it is."""
    home = Path(path).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)
    return home


def dagster_environment(home: Path) -> dict[str, str]:
    """Environment variables for a dagster CLI process using the instance at `home`."""
    return {"DAGSTER_HOME": str(Path(home).resolve()), **NO_TELEMETRY_ENV}


__all__ = ["dagster_environment", "prepare_dagster_home"]
