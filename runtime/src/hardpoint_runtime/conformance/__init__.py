"""Conformance checks that need the runtime: the module under test hosted by the real worker on Cyclone DDS.

``hardpoint conformance check`` runs every ``checks_*`` module of this package (and of
:mod:`hardpoint.conformance`) through the hardpoint pytest plugin. Import-light: nothing
here loads DDS until a check's fixture runs.
"""
