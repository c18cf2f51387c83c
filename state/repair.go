package state

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// repairCodecJSON leads a stored RepairRecord. Repairs are rare and read by
// people and tools, so they are JSON; the byte leaves room for a change.
const repairCodecJSON = 1

func encodeRepair(r RepairRecord) ([]byte, error) {
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode repair %s: %w", r.ID, err)
	}
	return append([]byte{repairCodecJSON}, b...), nil
}

func decodeRepair(b []byte) (RepairRecord, error) {
	var r RepairRecord
	if len(b) == 0 || b[0] != repairCodecJSON {
		return r, fmt.Errorf("repair record: unknown codec: %w", ErrCorrupt)
	}
	if err := json.Unmarshal(b[1:], &r); err != nil {
		return r, fmt.Errorf("repair record: %w: %w", ErrCorrupt, err)
	}
	return r, nil
}

// Repair returns one repair by id, or (nil, nil) if there is none.
func (s *Store) Repair(id string) (*RepairRecord, error) {
	var r *RepairRecord
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(appendRepairKey(nil, id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			rec, err := decodeRepair(v)
			r = &rec
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read repair %s: %w", id, err)
	}
	return r, nil
}

// Repairs returns up to limit repairs in the given state ("" for all), in id
// order. limit <= 0 means no limit. It reads every repair record: there is no
// index by state, as repairs are few and this serves people and tools.
func (s *Store) Repairs(state string, limit int) ([]RepairRecord, error) {
	var out []RepairRecord
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: repairPrefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid() && (limit <= 0 || len(out) < limit); it.Next() {
			var r RepairRecord
			if err := it.Item().Value(func(v []byte) (err error) { r, err = decodeRepair(v); return err }); err != nil {
				return fmt.Errorf("key %q: %w", it.Item().Key(), err)
			}
			if state == "" || r.State == state {
				out = append(out, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read repairs: %w", err)
	}
	return out, nil
}

// PutRepair writes one repair record on its own, durably, outside the
// engine's batches: for tools and tests. The engine writes repair records in
// its checkpoints, with the audit records of its decisions.
func (s *Store) PutRepair(r RepairRecord) error {
	b := s.NewBatch()
	b.PutRepair(r)
	return s.Commit(b)
}
