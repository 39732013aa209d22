"""REPLICAS=N: the replicas' ports, names and supervision, and the proxy's configuration."""

from __future__ import annotations

import subprocess
from pathlib import Path

from devstack.settings import ROOT
from devstack.stack import INFRASTRUCTURE, PROXY, SERVICE_ORDER, Stack, isolated_settings
from devstack.stack.replicas import EVENT_ROUTES, compose_nginx_config


def stack(tmp_path: Path, replicas: int) -> Stack:
    return Stack(isolated_settings(tmp_path, REPLICAS=replicas), dapr_bin_dir=tmp_path)


def test_one_replica_is_the_stack_as_it_always_was(tmp_path: Path) -> None:
    one = stack(tmp_path, 1)

    assert one.service_order == SERVICE_ORDER
    assert not one.proxied
    assert one.replicas[0].app_port == one.settings.app_port


def test_each_replica_has_its_own_ports_and_the_proxy_has_the_api_port(tmp_path: Path) -> None:
    three = stack(tmp_path, 3)

    assert three.service_order == (
        *INFRASTRUCTURE,
        "daprd-1", "app-1", "daprd-2", "app-2", "daprd-3", "app-3",
        PROXY,
    )  # fmt: skip
    ports = list(three.ports().values())
    assert len(ports) == len(set(ports)), three.ports()
    assert three.settings.app_port not in [r.app_port for r in three.replicas]
    # Replica 1's sidecar keeps the DAPR_* ports, so the printed sidecar URL stays valid.
    assert three.replicas[0].dapr_http_port == three.settings.dapr_http_port
    for replica in three.replicas:
        daprd = three.services[replica.daprd_name].argv
        assert daprd[daprd.index("--dapr-grpc-port") + 1] == str(replica.dapr_grpc_port)
        app = three.services[replica.app_name]
        assert app.env["DAPR_GRPC_PORT"] == str(replica.dapr_grpc_port)


def test_each_daprd_is_judged_on_its_own_metadata(tmp_path: Path) -> None:
    three = stack(tmp_path, 3)

    supervisor = three._supervisor(three.service_order)

    targets = sorted(condition.target for condition in supervisor._conditions)
    assert targets == ["daprd-1", "daprd-2", "daprd-3"]


def test_proxy_fails_over_and_streams_events_unbuffered(tmp_path: Path) -> None:
    three = stack(tmp_path, 3)

    three.write_proxy_config()
    config = (three.proxy_dir / "nginx.conf").read_text()

    for replica in three.replicas:
        assert f"server 127.0.0.1:{replica.app_port} " in config
    # 502 is the app's "my own sidecar is gone"; its 503 (shared by every replica) is not.
    assert "proxy_next_upstream error timeout http_502 non_idempotent;" in config
    assert "proxy_set_header X-Request-Id $request_id;" in config
    events = config[config.index(EVENT_ROUTES) :]
    events = events[: events.index("}")]
    assert "proxy_buffering off;" in events
    assert "proxy_read_timeout 1h;" in events


def test_nginx_accepts_the_generated_configuration(tmp_path: Path) -> None:
    three = stack(tmp_path, 3)
    three.write_proxy_config()

    checked = subprocess.run(
        [*three.services[PROXY].argv, "-t"], capture_output=True, text=True, check=False
    )

    assert checked.returncode == 0, checked.stderr


def test_the_compose_proxy_configuration_is_the_generated_one() -> None:
    committed = (ROOT / "config" / "nginx-compose.conf").read_text()

    assert committed == compose_nginx_config(), (
        'regenerate it: python -c "from devstack.stack.replicas import compose_nginx_config as c; '
        "open('config/nginx-compose.conf', 'w').write(c())\""
    )
