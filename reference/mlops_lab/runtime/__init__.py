"""Local process supervision: start every component as a process on 127.0.0.1, wait until healthy, stop."""
