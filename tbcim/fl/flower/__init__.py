"""The Flower engine (issue 13): the EDs as Flower ``ClientApp``s on Flower's Ray-backed
simulation runtime, the ESs' round control as the ``ServerApp``, the chain as a JSON-RPC node.

The round is the one of :mod:`tbcim.fl.onchain` (TBCIM section II-A, Fig. 3); only who does
what moves. Each ED, in a Ray worker process, reads the global model from the chain, trains on
its partition, and signs and sends its own commitment and update transactions to the node. The
``ServerApp`` (:mod:`tbcim.fl.flower.server_app`) opens the round on chain, produces the blocks
(proof-of-stake coinbase, as on the in-process engine), waits for the deadline, has an ES
aggregate on chain and reads the new model back. No update passes through the server.
:func:`tbcim.fl.flower.engine.run_flower_rounds` runs it; docs/fl.md ("The Flower engine") maps
it onto Flower and lists the order effects.

Importing this package does not import Flower or Ray; the modules below do.
"""
