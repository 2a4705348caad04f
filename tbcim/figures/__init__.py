"""Every figure of both papers from fresh runs, each with its claim checked (``tbcim figures``).

``core`` (Claim, FigureContext, FigureSpec), ``registry`` (the figures by ``--fig`` name),
``runner`` (run them into a folder, claims.json); one module per group of figures:
``fl_figures`` (TBCIM Figs. 5, 11, 12), ``market_figures`` (Figs. 9, 10), ``auction_figures``
(Figs. 6, 7, 8) and ``matching_figures`` (the second paper's Table II, Figs. 3-5, Table III).
"""
