"""Support of the integration tests: child-process entry points and the parent-side harness.

* :mod:`node` — an SDK module process (a :class:`hardpoint.Bus` on a
  :class:`hardpoint.CycloneTransport`) driven by JSON lines on stdin.
* :mod:`schema_decoder` — a generic tool with no generated code and no
  ``hardpoint`` import: decodes live samples using only the schemas on ``hp/schemas``.
* :mod:`harness` — what the tests use to start and talk to those processes.
"""
