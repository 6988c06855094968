"""The IPsec dataplane: userspace ESP on a TUN device or the kernel's XFRM (issue 7).

See :mod:`gateway.dataplane.base` for the interface the daemon uses.
"""
