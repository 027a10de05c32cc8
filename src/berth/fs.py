"""Files under a root that an attacker may have shaped: an image's layers, a container's rootfs,
a build stage, a volume, berth's own data root.

Every walk here goes by directory file descriptor with O_NOFOLLOW, so a symlink planted anywhere
on the way resolves inside the root or not at all; never through a host path string. This is the
one root-confined resolver of the code base: storage, volumes, the builder and the runtime use it.
"""

from __future__ import annotations
