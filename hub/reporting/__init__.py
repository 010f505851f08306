"""Regulatory reporting: report types (:mod:`.registry`), quarters in the operator's time zone
(:mod:`.periods`) and the first report type, the KEV 2022 mobile statistics (:mod:`.kev`).

Pure and columnar: an engine reads files and answers figures and findings; the workflow, the
regulator and the approver live above it.
"""
