package keystore

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The crash test re-executes the test binary as a child that writes into a
// Dir and is killed with SIGKILL in the middle of a Put and of an
// AppendUpload; the parent then reopens the Dir as a restarted server would.

const crashEnv = "KEYSTORE_CRASH_CHILD_ROOT"

// The child's three blobs: A is stored completely, B is being Put when the
// child dies, C is a resumable upload whose second append is cut.
var (
	crashA      = blob("crash-A", 300_000)
	crashB      = blob("crash-B", 300_000)
	crashC      = blob("crash-C", 300_000)
	crashCFirst = 100_000 // acknowledged before the crash
	crashCSent  = 70_000  // sent in the cut append
	crashBSent  = 150_000 // sent in the cut Put
)

// stallReader returns data, then reports on the channel and blocks for ever
// at its next Read: by then the copy loop has written everything returned.
type stallReader struct {
	r       io.Reader
	stalled chan<- struct{}
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		s.stalled <- struct{}{}
		select {}
	}
	return n, err
}

func crashChild(root string) {
	ctx := context.Background()
	d, err := NewDir(root)
	if err != nil {
		panic(err)
	}
	if _, err := d.Put(ctx, IDOf(crashA), bytes.NewReader(crashA), 0); err != nil {
		panic(err)
	}
	if _, err := d.AppendUpload(ctx, IDOf(crashC), 0, bytes.NewReader(crashC[:crashCFirst]), 0); err != nil {
		panic(err)
	}
	stalled := make(chan struct{})
	go d.Put(ctx, IDOf(crashB), &stallReader{bytes.NewReader(crashB[:crashBSent]), stalled}, 0)
	go d.AppendUpload(ctx, IDOf(crashC), int64(crashCFirst),
		&stallReader{bytes.NewReader(crashC[crashCFirst : crashCFirst+crashCSent]), stalled}, 0)
	<-stalled
	<-stalled
	fmt.Println("KEYSTORE-CHILD-STALLED")
	select {}
}

func TestDirSurvivesKill9(t *testing.T) {
	if root := os.Getenv(crashEnv); root != "" {
		crashChild(root)
		return
	}
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	root := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDirSurvivesKill9$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+root)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(out)
	stalled := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "KEYSTORE-CHILD-STALLED") {
			stalled = true
			break
		}
	}
	require.True(t, stalled, "child did not reach the crash point")
	require.NoError(t, cmd.Process.Kill()) // SIGKILL on Unix
	_ = cmd.Wait()

	// The Put's temporary file is there, but nothing names it.
	tmps, err := filepath.Glob(filepath.Join(root, "keys", putTempPrefix+"*"))
	require.NoError(t, err)
	assert.Len(t, tmps, 1, "the killed Put left its temporary file")

	// Restart.
	d, err := NewDir(root)
	require.NoError(t, err)
	bg := context.Background()
	assert.Equal(t, crashA, readAll(t, d, IDOf(crashA)), "complete blob served")
	assertAbsent(t, d, IDOf(crashB))
	infos, err := d.List(bg)
	require.NoError(t, err)
	require.Len(t, infos, 1)
	assert.Equal(t, IDOf(crashA), infos[0].ID)
	tb, err := d.TotalBytes(bg)
	require.NoError(t, err)
	assert.Equal(t, int64(len(crashA)), tb)

	// The resumable upload continues from its staged offset: at least the
	// acknowledged bytes, at most what was sent (here, all of it was
	// written before the kill).
	idC := IDOf(crashC)
	assertAbsent(t, d, idC)
	off, err := d.UploadOffset(bg, idC)
	require.NoError(t, err)
	assert.Equal(t, int64(crashCFirst+crashCSent), off)
	n, err := d.AppendUpload(bg, idC, off, bytes.NewReader(crashC[off:]), 0)
	require.NoError(t, err)
	assert.Equal(t, int64(len(crashC)), n)
	_, err = d.CompleteUpload(bg, idC)
	require.NoError(t, err)
	assert.Equal(t, crashC, readAll(t, d, idC))

	// The interrupted Put can simply be retried.
	_, err = d.Put(bg, IDOf(crashB), bytes.NewReader(crashB), 0)
	require.NoError(t, err)
	assert.Equal(t, crashB, readAll(t, d, IDOf(crashB)))
}

func TestNewDirRemovesStalePutTemporaries(t *testing.T) {
	root := t.TempDir()
	_, err := NewDir(root)
	require.NoError(t, err)
	stale := filepath.Join(root, "keys", putTempPrefix+"0123456789abcdef-1"+putTempSuffix)
	fresh := filepath.Join(root, "keys", putTempPrefix+"0123456789abcdef-2"+putTempSuffix)
	staged := filepath.Join(root, "uploads", IDOf([]byte("x")))
	for _, p := range []string{stale, fresh, staged} {
		require.NoError(t, os.WriteFile(p, []byte("partial"), 0o600))
	}
	old := time.Now().Add(-2 * staleTempAge)
	require.NoError(t, os.Chtimes(stale, old, old))
	require.NoError(t, os.Chtimes(staged, old, old))

	_, err = NewDir(root)
	require.NoError(t, err)
	assert.NoFileExists(t, stale)
	assert.FileExists(t, fresh, "may belong to a live Put")
	assert.FileExists(t, staged, "staged uploads are kept for resuming")
}
