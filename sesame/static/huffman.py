"""The Huffman tree of hierarchical softmax: each word's path of inner nodes and the
binary code that leads to it, padded into arrays for vectorised updates."""
from __future__ import annotations

import heapq

import numpy as np


def huffman_paths(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(points (V, L) inner-node indices in 0..V-2, -1 padded; codes (V, L) in {0, 1}),
    root first. P(w | h) = prod over the path of sigmoid((1 - 2 code) * u_node . h)."""
    v = len(counts)
    if v < 2:
        return np.zeros((v, 1), np.int64), np.zeros((v, 1), np.int64)
    heap = [(int(c), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    parent = np.zeros(2 * v - 1, dtype=np.int64)
    code = np.zeros(2 * v - 1, dtype=np.int64)
    nxt = v
    while len(heap) > 1:
        c1, a = heapq.heappop(heap)
        c2, b = heapq.heappop(heap)
        parent[a], parent[b], code[b] = nxt, nxt, 1
        heapq.heappush(heap, (c1 + c2, nxt))
        nxt += 1
    root = nxt - 1
    paths, codes = [], []
    for w in range(v):
        p, c, node = [], [], w
        while node != root:
            c.append(code[node])
            node = parent[node]
            p.append(node - v)
        paths.append(p[::-1])
        codes.append(c[::-1])
    depth = max(map(len, paths))
    points = np.full((v, depth), -1, dtype=np.int64)
    bits = np.zeros((v, depth), dtype=np.int64)
    for w in range(v):
        points[w, :len(paths[w])] = paths[w]
        bits[w, :len(codes[w])] = codes[w]
    return points, bits
