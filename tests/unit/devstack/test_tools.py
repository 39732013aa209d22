"""`make -s images` is `eval`ed: the Debian installs behind it print nothing on standard output."""

from __future__ import annotations

import pytest

from devstack.__main__ import install_debian_packages


def test_apt_writes_every_line_to_standard_error(capfd: pytest.CaptureFixture[str]) -> None:
    # Real apt-get (update, then install in simulate mode) for a package this machine lacks:
    # what apt prints for a real install, it prints here, and none of it may reach stdout.
    install_debian_packages(["sl"], simulate=True)

    out, err = capfd.readouterr()
    assert out == ""
    assert "Inst sl " in err
    assert "installing sl (Debian packages)" in err
