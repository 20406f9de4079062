package store

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"

	"github.com/hashicorp/vault/sdk/logical"
)

// The index, index/<shard> (not seal-wrapped: names, due times and states,
// no secret): what the active node's index and refresh schedule need of
// each credential (when its keep-alive is due, whether it needs
// reauthorization, when a static token expires), in IndexShards entries,
// so that a start rebuilds them from that many reads instead of one read
// of every credential. The names themselves come from listing creds/, so
// a shard that trails a write (it is written after the entries, in
// batches) loses nothing: a name it lacks is read, a name it has that
// storage does not list is gone. Version indexVersion; a newer one is not
// read (the names it would hold are read one by one).

// IndexShards is how many entries the index is split into: at a million
// credentials each holds about 4,000 records, some 200 KiB, far under the
// size Vault's integrated storage takes in one entry.
const IndexShards = 256

const indexVersion = 1

// IndexRecord is what the index keeps of one credential.
type IndexRecord struct {
	// KeepAlive is when its keep-alive is due, in Unix seconds; 0 for
	// none. It may be earlier than the entry says (a refresh since moved
	// it later): a refresh that finds nothing due reschedules itself.
	KeepAlive int64 `json:"k,omitempty"`
	// Reauth: it needs reauthorization.
	Reauth bool `json:"r,omitempty"`
	// Stopped: its refreshes stopped after a lost answer, until an
	// operator acts (for the metrics).
	Stopped bool `json:"x,omitempty"`
	// Static: it holds a static token, expiring at StaticExpires (Unix
	// seconds).
	Static        bool  `json:"s,omitempty"`
	StaticExpires int64 `json:"e,omitempty"`
}

type indexShard struct {
	Version int                    `json:"v"`
	Records map[string]IndexRecord `json:"records"`
}

// IndexShardOf is the shard that holds name's record.
func IndexShardOf(name string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return int(h.Sum32() % IndexShards)
}

func indexKey(shard int) string { return fmt.Sprintf("%s%02x", IndexPrefix, shard) }

// IndexShard returns the records of shard (empty when it is not stored,
// or was written by a newer release).
func (st Store) IndexShard(ctx context.Context, shard int) (map[string]IndexRecord, error) {
	raw, err := st.s.Get(ctx, indexKey(shard))
	if err != nil {
		return nil, fmt.Errorf("reading the index: %w", err)
	}
	if raw == nil {
		return map[string]IndexRecord{}, nil
	}
	var sh indexShard
	if err := json.Unmarshal(raw.Value, &sh); err != nil || sh.Version > indexVersion || sh.Records == nil {
		// Its names are read one by one, and the shard written anew.
		return map[string]IndexRecord{}, nil
	}
	return sh.Records, nil
}

// PutIndexShard stores shard's records; an empty shard is deleted.
func (st Store) PutIndexShard(ctx context.Context, shard int, records map[string]IndexRecord) error {
	if len(records) == 0 {
		if err := st.s.Delete(ctx, indexKey(shard)); err != nil {
			return fmt.Errorf("storing the index: %w: %w", ErrWrite, err)
		}
		return nil
	}
	raw, err := json.Marshal(indexShard{Version: indexVersion, Records: records})
	if err != nil {
		return fmt.Errorf("encoding the index: %w", err)
	}
	if err := st.s.Put(ctx, &logical.StorageEntry{Key: indexKey(shard), Value: raw}); err != nil {
		return fmt.Errorf("storing the index: %w: %w", ErrWrite, err)
	}
	return nil
}
