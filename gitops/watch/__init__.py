"""The watcher: a long-running loop that keeps a stack equal to git (issue 4).

`decide` and `guard` are pure; `lock`, `loop` and `server` do the I/O.
"""
