"""What the service may reach: :mod:`.ssrf` (the address guard), :mod:`.egress` (FFmpeg's checked proxy)
and :mod:`.sources` (video sources, images and hook URLs under the service's policy)."""
