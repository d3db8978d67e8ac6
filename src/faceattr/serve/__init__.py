"""The HTTP API and web page of `faceattr serve` (app), run by a pool of editing worker processes (pool)."""
