"""A NOAUTH server (ITK_SNAP_SERVER_NOAUTH=1): the client works without logging in."""
import os
import subprocess

from client_cli import run_dss
from dss_client import DSSClient
from helpers import PYTHON, ServerProcess, free_port


def test_cookieless_client_and_cli_act_as_the_test_admin(make_database, tmp_path):
    port = free_port()
    env = {"DATABASE_URL": make_database("dss_client_noauth"), "PORT": str(port),
           "DSS_DATASTORE": str(tmp_path / "datastore"), "ITK_SNAP_SERVER_NOAUTH": "1"}
    subprocess.run([PYTHON, "-m", "dss_server", "migrate"], env={**os.environ, **env},
                   cwd=tmp_path, check=True, capture_output=True, timeout=120)
    url = f"http://127.0.0.1:{port}"
    with ServerProcess([PYTHON, "-m", "dss_server", "run"], env, f"{url}/healthz",
                       tmp_path / "server.log", cwd=tmp_path):
        with DSSClient(url) as client:
            assert client.whoami() == "test@example.com"
            client.add_provider("noauth-lab")
            assert "noauth-lab" in client.providers()
        listed = run_dss(tmp_path / "none.json", "--server", url, "admin", "providers")
    assert listed.returncode == 0 and "noauth-lab" in listed.stdout.split()
