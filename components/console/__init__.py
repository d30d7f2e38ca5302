"""The browser console: a websockify gateway per embedded host, noVNC pages, signed links that expire."""
