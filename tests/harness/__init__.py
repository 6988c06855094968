"""Test harness: certificates, network namespaces and Debian's real peers.

Modules:

* :mod:`tests.harness.certs` -- X.509 CA / intermediate / end-entity factory (``cryptography``).
* :mod:`tests.harness.netns` -- network namespaces and veth pairs that always tear down.
* :mod:`tests.harness.eapol_test` -- runs wpa_supplicant's ``eapol_test`` against a RADIUS server.
* :mod:`tests.harness.freeradius` -- a throw-away ``freeradius -X`` with its own config dir.
* :mod:`tests.harness.charon` -- strongSwan charon in a namespace, driven through ``swanctl``.
* :mod:`tests.harness.vici` -- a small VICI client (charon's SA state as dicts).
* :mod:`tests.harness.tshark` -- packet capture in a namespace and tshark decoding/checks.
* :mod:`tests.harness.tools` -- tool lookup; missing tools skip naming the Debian package.

The pytest fixtures that wrap them live in ``tests/conftest.py``.
"""

__all__: list[str] = []
