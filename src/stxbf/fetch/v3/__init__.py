"""The v3 source: a burn-time window fetched by cursor walks over Stacks heights, proven by count.

`/extended/v3/transactions` has no time filter and no offset (hirosystems/stacks-blockchain-api,
`src/api/routes/v3/transactions.ts`, `src/datastore/v3/pg-store-v3.ts` getTransactionSummaries):
it walks canonical txs newest first by `(block_height, microblock_sequence, tx_index)`, from a
cursor. So a window [start, end] of burn_block_time (the same inclusive windows, keyed the same
way, as the v1 source; a database moves between sources without refetching) is mapped to Stacks
heights with `/extended/v2/burn-blocks` (`src/api/routes/v2/burn-blocks.ts`,
`src/datastore/pg-store-v2.ts` getBurnBlocks: every burn block that has canonical Stacks blocks,
newest first, 30 a page, each with its `stacks_blocks` hashes newest first and `total_tx_count`
= the sum of their `tx_count`).

Why the mapping is exact:

1. A Stacks block's burn_block_time is its tenure's (the Nakamoto processor appends a block with
   the tenure's snapshot timestamp; a tenure extended over later Bitcoin blocks keeps it), and a
   tx's is its block's. So every tx of a burn block in the list carries that burn block's time;
   the walk checks it for every tx and refuses the window if one differs.
2. Burn heights never decrease along Stacks heights (tenures follow each other along one Bitcoin
   fork), so each listed burn block owns one contiguous run of Stacks heights, the runs follow
   each other in list order, and one known height (an anchor: one `/extended/v2/blocks/:hash`,
   or any tx seen before) places them all. The walk checks every tx's height against its run.
3. Burn *times* are not monotonic: a Bitcoin timestamp need only exceed the median of the 11
   before it and may run up to 2 h ahead of the network's clock. So the burn blocks whose time lies
   in [start, end] need not be adjacent, and txs of the window can sit above or below the heights
   the window's edges suggest. The source reads the list from a burn block whose time is later
   than `end + slack` down to one earlier than `start - slack` (slack 2 h by default), or to the
   tip / the chain's first block, and takes every burn block in between whose time is in the
   window. Those outside but between are walked too and dropped by time.
4. Every walked burn block's txs are counted and must equal its `total_tx_count`; the rows kept
   must equal the sum over the window's burn blocks. A mismatch re-walks, then re-reads the burn
   blocks, and a window that stays inconsistent is returned `incomplete` (never short).

Many walks are in flight at once: the window's heights are cut at burn-block boundaries into
height ranges, each walked downwards by its own cursor.

Each module of the package does one job. `routes` sends the v2 and v3 requests and counts them.
`burn_blocks` reads the burn-block list as far as a window needs. `heights` places burn blocks on
Stacks heights and cuts them into height ranges. `source` fetches a window: it does all of that,
walks each height range with a cursor (proven by count), and keeps the window's rows. `engine`
(`V3Engine`) cuts and runs the windows as the v1 engine does.
"""

from stxbf.fetch.v3.engine import V3Engine
from stxbf.fetch.v3.routes import BLOCKS_PATH, BURN_BLOCKS_PATH, V3_TX_PATH, V3Stats
from stxbf.fetch.v3.source import V3Source

__all__ = ["BLOCKS_PATH", "BURN_BLOCKS_PATH", "V3_TX_PATH", "V3Engine", "V3Source", "V3Stats"]
