package keystore

import (
	"container/list"
	"context"
	"fmt"
	"runtime/debug"
	"sync"
)

// Cache holds loaded values (deserialized key sets) in memory, bounded by
// their declared sizes in bytes, evicting the least recently used, and
// loading each ID once however many callers ask for it at the same time.
//
// The bound counts the sizes that load functions report for the entries the
// cache keeps; it does not count values being loaded, nor evicted values that
// callers still hold, so the process's memory can exceed maxBytes by those.
// Evicting an entry only drops the cache's reference (there is no close
// hook): the garbage collector frees the value once its last user is done.
//
// A Cache is safe for concurrent use. Its zero value is not usable: call
// NewCache.
type Cache[V any] struct {
	mu      sync.Mutex
	max     int64
	bytes   int64
	lru     *list.List // of *cacheEntry[V], most recently used first
	entries map[string]*cacheEntry[V]
	stats   CacheStats
}

// CacheStats counts a Cache's activity since NewCache.
type CacheStats struct {
	// Hits counts Gets that called no load function: the value was cached,
	// or was being loaded for another caller and was shared.
	Hits int64
	// Misses counts Gets that started a load.
	Misses int64
	// Evictions counts entries dropped to stay within maxBytes (Remove and
	// entries never kept are not counted).
	Evictions int64
	// Bytes is the summed size of the kept entries; Entries their number.
	Bytes   int64
	Entries int
}

type cacheEntry[V any] struct {
	id   string
	done chan struct{} // closed once val, size, err are set
	val  V
	size int64
	err  error

	elem    *list.Element // in the LRU list: loaded and kept
	waiters int           // callers waiting for the load
	cancel  context.CancelFunc
}

// NewCache returns an empty cache keeping at most maxBytes of values.
func NewCache[V any](maxBytes int64) *Cache[V] {
	return &Cache[V]{max: maxBytes, lru: list.New(), entries: make(map[string]*cacheEntry[V])}
}

// Get returns the value of id, calling load if it is neither cached nor
// being loaded. Concurrent Gets of one id share a single load call.
//
// load runs in its own goroutine with a context that carries the values of
// the first caller's ctx but is cancelled only once every caller waiting for
// it has given up (their ctx is done): a caller that gives up returns its
// ctx's error at once without cancelling the load for the others. load
// returns the value and its size in bytes (negative counts as 0).
//
// A value is kept if its load succeeded, it is not larger than maxBytes and
// Remove(id) was not called during the load; then the least recently used
// entries are evicted until the kept bytes fit in maxBytes. An entry larger
// than maxBytes is returned to its callers but not kept. Errors are returned
// to the callers waiting at that time and never cached; a panic in load is
// returned as an error.
func (c *Cache[V]) Get(ctx context.Context, id string, load func(ctx context.Context) (V, int64, error)) (V, error) {
	c.mu.Lock()
	if e, ok := c.entries[id]; ok {
		c.stats.Hits++
		if e.elem != nil {
			c.lru.MoveToFront(e.elem)
			v := e.val
			c.mu.Unlock()
			return v, nil
		}
		e.waiters++
		c.mu.Unlock()
		return c.wait(ctx, e)
	}
	c.stats.Misses++
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e := &cacheEntry[V]{id: id, done: make(chan struct{}), waiters: 1, cancel: cancel}
	c.entries[id] = e
	c.mu.Unlock()
	go c.load(lctx, e, load)
	return c.wait(ctx, e)
}

func (c *Cache[V]) wait(ctx context.Context, e *cacheEntry[V]) (V, error) {
	select {
	case <-e.done:
		return e.val, e.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-e.done: // finished meanwhile: the result is there, take it
		return e.val, e.err
	default:
	}
	e.waiters--
	if e.waiters == 0 {
		// Nobody wants it any more: cancel the load and let the next Get
		// start afresh rather than join a cancelled load.
		e.cancel()
		if c.entries[e.id] == e {
			delete(c.entries, e.id)
		}
	}
	var zero V
	return zero, fmt.Errorf("keystore: cache get %s: %w", e.id, ctx.Err())
}

func (c *Cache[V]) load(ctx context.Context, e *cacheEntry[V], load func(context.Context) (V, int64, error)) {
	defer e.cancel()
	var (
		v    V
		size int64
		err  error
	)
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("keystore: cache load of %s panicked: %v\n%s", e.id, r, debug.Stack())
			}
		}()
		v, size, err = load(ctx)
	}()
	if size < 0 {
		size = 0
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	e.val, e.size, e.err = v, size, err
	close(e.done)
	mine := c.entries[e.id] == e // false if removed or abandoned meanwhile
	if err != nil || !mine || size > c.max {
		if mine {
			delete(c.entries, e.id)
		}
		return
	}
	e.elem = c.lru.PushFront(e)
	c.bytes += size
	for c.bytes > c.max {
		back := c.lru.Back()
		if back == e.elem {
			break // cannot happen: size <= max
		}
		c.drop(back.Value.(*cacheEntry[V]))
		c.stats.Evictions++
	}
}

// drop removes a kept entry; c.mu is held.
func (c *Cache[V]) drop(e *cacheEntry[V]) {
	c.lru.Remove(e.elem)
	e.elem = nil
	c.bytes -= e.size
	delete(c.entries, e.id)
}

// Remove forgets id: a kept value is dropped, and a load in progress still
// answers its callers but its value is not kept (a later Get loads again).
// Call it after deleting the blob the value was loaded from.
func (c *Cache[V]) Remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok {
		return
	}
	if e.elem != nil {
		c.drop(e)
		return
	}
	delete(c.entries, id)
}

// Stats returns the counters and the current occupancy.
func (c *Cache[V]) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Bytes = c.bytes
	s.Entries = c.lru.Len()
	return s
}
