"""The benchmark's contenders: each one a script run in a process of its own.

``python -m bench.contenders.<name> SHAPE BASE_URL OUT GA4_PAGE`` reads every page of SHAPE
(``hubspot`` or ``ga4``) from BASE_URL and writes it to OUT; the suite counts OUT's rows.
"""
