"""Transfer analysis on extracted features: a linear probe with kNN retrieval
(`fgtf.transfer.linear`), EMD domain similarity
(`fgtf.transfer.domain_similarity`) and the transferability scores
(`fgtf.transfer.transferability`: LogME, LEEP, NCE, N-LEEP, H-score, TransRate,
GBC, SFDA, OTDD). Plain NumPy arrays in and out."""
