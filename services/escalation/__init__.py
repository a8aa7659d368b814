"""统一指挥 — unified command: town → county → city, handing down, neighbour towns."""
