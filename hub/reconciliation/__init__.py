"""Billing reconciliation's domain engine: network usage against billing's rated usage.

:mod:`hub.reconciliation.engine` holds the work schemas and the split / reconcile stages. The
CDR and rated-usage schemas it reads stay in :mod:`hub.usage`, which the simulators, the API and
the billing activities use too. Nothing here knows Temporal: ``activities/reconciliation.py``
runs these functions as activities.
"""
