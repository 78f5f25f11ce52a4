package keystore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sized returns a load function yielding v with the given size, counting its
// calls.
func sized(v string, size int64, calls *atomic.Int64) func(context.Context) (string, int64, error) {
	return func(context.Context) (string, int64, error) {
		calls.Add(1)
		return v, size, nil
	}
}

func TestCacheEvictsLeastRecentlyUsedByBytes(t *testing.T) {
	ctx := context.Background()
	c := NewCache[string](100)
	var calls atomic.Int64
	for _, id := range []string{"a", "b"} {
		v, err := c.Get(ctx, id, sized(id, 40, &calls))
		require.NoError(t, err)
		assert.Equal(t, id, v)
	}
	// Touch a: b becomes the least recently used.
	v, err := c.Get(ctx, "a", sized("wrong", 40, &calls))
	require.NoError(t, err)
	assert.Equal(t, "a", v, "cached value, load not called")
	_, err = c.Get(ctx, "c", sized("c", 40, &calls))
	require.NoError(t, err)
	assert.Equal(t, CacheStats{Hits: 1, Misses: 3, Evictions: 1, Bytes: 80, Entries: 2}, c.Stats())
	assert.Equal(t, int64(3), calls.Load())

	// a and c are still cached; b is loaded again and evicts a (the LRU).
	for _, id := range []string{"c", "a"} {
		_, err = c.Get(ctx, id, sized(id, 40, &calls))
		require.NoError(t, err)
	}
	assert.Equal(t, int64(3), calls.Load())
	_, err = c.Get(ctx, "b", sized("b", 40, &calls))
	require.NoError(t, err)
	assert.Equal(t, int64(4), calls.Load())
	_, err = c.Get(ctx, "a", sized("a", 40, &calls))
	require.NoError(t, err)
	assert.Equal(t, int64(4), calls.Load(), "a was used after c, so c was evicted")
	_, err = c.Get(ctx, "c", sized("c", 40, &calls))
	require.NoError(t, err)
	assert.Equal(t, int64(5), calls.Load())

	// One large entry evicts several.
	_, err = c.Get(ctx, "big", sized("big", 100, &calls))
	require.NoError(t, err)
	st := c.Stats()
	assert.Equal(t, 1, st.Entries)
	assert.Equal(t, int64(100), st.Bytes)
}

func TestCacheLoadsOnceForConcurrentCallers(t *testing.T) {
	const n = 16
	c := NewCache[*int](1 << 20)
	var calls atomic.Int64
	release := make(chan struct{})
	load := func(context.Context) (*int, int64, error) {
		calls.Add(1)
		<-release
		v := 42
		return &v, 8, nil
	}
	var wg sync.WaitGroup
	results := make([]*int, n)
	for i := range n {
		wg.Go(func() {
			v, err := c.Get(context.Background(), "k", load)
			assert.NoError(t, err)
			results[i] = v
		})
	}
	// Release the load only once every caller is waiting for it.
	require.Eventually(t, func() bool {
		s := c.Stats()
		return s.Hits+s.Misses == n
	}, 5*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	assert.Equal(t, int64(1), calls.Load())
	for _, r := range results {
		assert.Same(t, results[0], r, "every caller gets the one loaded value")
	}
	assert.Equal(t, CacheStats{Hits: n - 1, Misses: 1, Bytes: 8, Entries: 1}, c.Stats())
}

func TestCacheReturnsButDoesNotKeepOversizeEntries(t *testing.T) {
	ctx := context.Background()
	c := NewCache[string](10)
	var calls atomic.Int64
	_, err := c.Get(ctx, "small", sized("small", 10, &calls))
	require.NoError(t, err)
	v, err := c.Get(ctx, "huge", sized("huge", 11, &calls))
	require.NoError(t, err)
	assert.Equal(t, "huge", v)
	assert.Equal(t, CacheStats{Misses: 2, Bytes: 10, Entries: 1}, c.Stats(), "nothing evicted for it")
	_, err = c.Get(ctx, "huge", sized("huge", 11, &calls))
	require.NoError(t, err)
	assert.Equal(t, int64(3), calls.Load(), "loaded again")
}

func TestCacheDoesNotCacheLoadErrors(t *testing.T) {
	ctx := context.Background()
	c := NewCache[string](100)
	boom := errors.New("corrupt key set")
	_, err := c.Get(ctx, "k", func(context.Context) (string, int64, error) { return "", 0, boom })
	require.ErrorIs(t, err, boom)
	assert.Equal(t, 0, c.Stats().Entries)
	v, err := c.Get(ctx, "k", func(context.Context) (string, int64, error) { return "ok", 1, nil })
	require.NoError(t, err)
	assert.Equal(t, "ok", v)

	_, err = c.Get(ctx, "p", func(context.Context) (string, int64, error) { panic("bad shape") })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bad shape")
	assert.Equal(t, 1, c.Stats().Entries)
}

func TestCacheCallerGivingUpDoesNotCancelOthers(t *testing.T) {
	c := NewCache[string](100)
	release := make(chan struct{})
	var loadCtxErr atomic.Value
	load := func(ctx context.Context) (string, int64, error) {
		select {
		case <-release:
			return "v", 1, nil
		case <-ctx.Done():
			loadCtxErr.Store(ctx.Err())
			return "", 0, ctx.Err()
		}
	}
	impatient, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := c.Get(impatient, "k", load); done <- err }()
	require.Eventually(t, func() bool { return c.Stats().Misses == 1 }, 5*time.Second, time.Millisecond)
	patient := make(chan string)
	go func() { v, _ := c.Get(context.Background(), "k", load); patient <- v }()
	require.Eventually(t, func() bool { return c.Stats().Hits == 1 }, 5*time.Second, time.Millisecond)

	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	close(release)
	assert.Equal(t, "v", <-patient)
	assert.Nil(t, loadCtxErr.Load(), "the load went on for the patient caller")
	assert.Equal(t, 1, c.Stats().Entries)
}

func TestCacheLastCallerGivingUpCancelsTheLoad(t *testing.T) {
	c := NewCache[string](100)
	cancelled := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-time.After(10 * time.Millisecond)
		cancel()
	}()
	_, err := c.Get(ctx, "k", func(lctx context.Context) (string, int64, error) {
		<-lctx.Done()
		close(cancelled)
		return "", 0, lctx.Err()
	})
	require.ErrorIs(t, err, context.Canceled)
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("load not cancelled")
	}
	// A new Get starts a new load rather than joining the cancelled one.
	v, err := c.Get(context.Background(), "k", func(context.Context) (string, int64, error) { return "fresh", 1, nil })
	require.NoError(t, err)
	assert.Equal(t, "fresh", v)
}

func TestCacheRemove(t *testing.T) {
	ctx := context.Background()
	c := NewCache[string](100)
	var calls atomic.Int64
	_, err := c.Get(ctx, "k", sized("k", 30, &calls))
	require.NoError(t, err)
	c.Remove("k")
	c.Remove("absent")
	assert.Equal(t, CacheStats{Misses: 1}, c.Stats())
	_, err = c.Get(ctx, "k", sized("k", 30, &calls))
	require.NoError(t, err)
	assert.Equal(t, int64(2), calls.Load())

	// Removed during its load: answered, not kept.
	release := make(chan struct{})
	got := make(chan string)
	go func() {
		v, _ := c.Get(ctx, "loading", func(context.Context) (string, int64, error) { <-release; return "stale", 5, nil })
		got <- v
	}()
	require.Eventually(t, func() bool { return c.Stats().Misses == 3 }, 5*time.Second, time.Millisecond)
	c.Remove("loading")
	close(release)
	assert.Equal(t, "stale", <-got)
	assert.Equal(t, 1, c.Stats().Entries)
	v, err := c.Get(ctx, "loading", sized("new", 5, &calls))
	require.NoError(t, err)
	assert.Equal(t, "new", v)
}
