"""The hub's tools: the ``hub`` command (:mod:`hub.tools.cli`) and the development stack behind
``make run`` (:mod:`hub.tools.devstack`).

They run the hub's parts, so they are the only code in ``hub`` that may import ``worker`` and
``simulators`` (and the layers above ``hub``); the rest of ``hub`` imports none of them, which
``tests/hub/test_layout.py`` checks.
"""
