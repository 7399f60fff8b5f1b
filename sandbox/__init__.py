"""The sandbox registration platform: a real HTTP server standing in for the platform's API.

`create_app` (sandbox.app) builds the FastAPI app, `SandboxServer` (sandbox.server) serves it in a
thread, `SandboxControl` (sandbox.control) drives its control API. Contract: sandbox/README.md.
"""
