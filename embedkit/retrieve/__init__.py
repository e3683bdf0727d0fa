"""Retrieval as users run it: fusion of several indexes over one corpus and two-stage reranking, each
behind the same search interface as an index (``search_positions`` / ``search``)."""
