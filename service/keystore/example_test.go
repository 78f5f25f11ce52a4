package keystore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/polyformer/polyformer/service/keystore"
)

func ExampleDir() {
	root, err := os.MkdirTemp("", "keystore-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(root)
	store, err := keystore.NewDir(root)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	const maxBytes = 1 << 30

	// One-shot upload: the ID is the SHA-256 of the content.
	keys := []byte("evaluation keys, in the envelope format")
	id := keystore.IDOf(keys)
	info, err := store.Put(ctx, id, bytes.NewReader(keys), maxBytes)
	if err != nil {
		panic(err)
	}
	fmt.Println("stored", info.Size, "bytes")

	// A wrong ID is refused and nothing is stored.
	_, err = store.Put(ctx, keystore.IDOf([]byte("other")), bytes.NewReader(keys), maxBytes)
	fmt.Println("mismatch:", err != nil)

	// Resumable upload in chunks, resumed from the staged offset.
	big := bytes.Repeat([]byte("rotation key "), 1000)
	bigID := keystore.IDOf(big)
	for {
		off, err := store.UploadOffset(ctx, bigID)
		if err != nil {
			panic(err)
		}
		if off == int64(len(big)) {
			break
		}
		chunk := big[off:min(off+4096, int64(len(big)))]
		if _, err := store.AppendUpload(ctx, bigID, off, bytes.NewReader(chunk), maxBytes); err != nil {
			panic(err)
		}
	}
	info, err = store.CompleteUpload(ctx, bigID)
	if err != nil {
		panic(err)
	}
	fmt.Println("completed", info.Size, "bytes")

	rc, _, err := store.Open(ctx, id)
	if err != nil {
		panic(err)
	}
	defer rc.Close()
	got, _ := io.ReadAll(rc)
	fmt.Printf("%s\n", got)
	total, _ := store.TotalBytes(ctx)
	fmt.Println("total", total)
	// Output:
	// stored 39 bytes
	// mismatch: true
	// completed 13000 bytes
	// evaluation keys, in the envelope format
	// total 13039
}

func ExampleCache() {
	cache := keystore.NewCache[[]float64](1 << 20) // keep at most 1 MiB
	load := func(ctx context.Context) ([]float64, int64, error) {
		fmt.Println("loading")
		v := make([]float64, 1000)
		return v, 8 * int64(len(v)), nil
	}
	for range 3 {
		v, err := cache.Get(context.Background(), "some-id", load)
		if err != nil {
			panic(err)
		}
		_ = v
	}
	s := cache.Stats()
	fmt.Println(s.Misses, s.Hits, s.Bytes)
	// Output:
	// loading
	// 1 2 8000
}
