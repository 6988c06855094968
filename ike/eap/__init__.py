"""EAP (RFC 3748): codec, authenticator and peer state machines, simple methods.

Import from the modules, not from this package (it re-exports nothing, so that
``import ike.eap.method`` stays as light as the contract itself):

* ``ike.eap.method`` - the method contract (Decision, Step, EapServerMethod, EapPeerMethod,
  ServerMethodFactory, PeerMethodFactory, IdentifierAware)
* ``ike.eap.packet`` - packet codec, EapCode / EapType registries, Nak helpers, errors
* ``ike.eap.server`` / ``ike.eap.peer`` - EapServer / EapPeer state machines
* ``ike.eap.events`` - the events they report
* ``ike.eap.methods`` - EAP-MD5, EAP-MS-CHAPv2, EAP-GTC and the credentials callbacks
* ``ike.eap.mschapv2`` / ``ike.eap.md4`` - MS-CHAPv2 and MPPE primitives, MD4
"""

__all__: list[str] = []
