"""The bad-input corpus: cases of malformed configs, drifted or malformed API data, with their outcomes.

``cases.py`` lists them (each with the documented outcome it must give); ``source.py`` is the small API and
connector the record and wire cases go through; ``tests/test_bad_input_corpus.py`` runs every case.
"""
