"""The review queue: replies a person must read (issue 7, part 3), and the page when nobody has in time."""
