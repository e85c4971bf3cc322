"""USDⓈ-M perpetual futures (docs/semantics.md, "Perpetual futures", P1-P5): maintenance-margin
brackets, funding aligned to bars, and the per-run inputs both engines read."""
