"""Transfer analysis on extracted features: a linear probe with kNN retrieval
(`fgtf.transfer.linear`) and EMD domain similarity
(`fgtf.transfer.domain_similarity`). Plain NumPy arrays in and out."""
