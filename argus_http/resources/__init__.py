"""One Falcon resource module per route family: video, jobs, vframe, queue, faces, health, docs."""
