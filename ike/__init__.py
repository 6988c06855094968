"""IKEv2 (RFC 7296) and the EAP methods it carries.

IKEv2 engine (sans-I/O): :mod:`ike.sa` (``IkeEngine`` and its events), :mod:`ike.config`
(typed configuration), :mod:`ike.payloads` and :mod:`ike.message` (wire codec),
:mod:`ike.crypto` (transforms, prf+, key derivation, DH), :mod:`ike.auth` (AUTH payloads and
certificate checks), :mod:`ike.constants` (registries), :mod:`ike.errors` (exceptions carrying
their Notify type).  EAP: :mod:`ike.eap` and the ``ike.eap_*`` methods.

Nothing is imported here, so ``import ike.eap`` stays light.
"""
