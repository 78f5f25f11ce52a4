package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/service/api"
	"github.com/polyformer/polyformer/service/client"
	"github.com/polyformer/polyformer/service/keystore"
	"github.com/polyformer/polyformer/service/server"
)

// killEnv names the key store directory of the server child process of
// TestServerSurvivesKill9; killCircuitEnv its circuit file.
const (
	killEnv        = "POLYFORMER_TEST_SERVER_STORE"
	killCircuitEnv = "POLYFORMER_TEST_SERVER_CIRCUIT"
	killReady      = "SERVER-CHILD-LISTENING "
)

// serverChild serves the circuit on 127.0.0.1 with a directory key store
// until it is killed.
func serverChild(store, circuit string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "server child:", err)
		os.Exit(3)
	}
	data, err := os.ReadFile(circuit)
	if err != nil {
		fail(err)
	}
	c, err := server.NewCircuit(data, true, 0)
	if err != nil {
		fail(err)
	}
	d, err := keystore.NewDir(store)
	if err != nil {
		fail(err)
	}
	s, err := server.New(server.Config{Circuits: []*server.Circuit{c}, Store: d, Cache: server.NewKeyCache(1 << 30), MaxConcurrent: 1})
	if err != nil {
		fail(err)
	}
	fail(s.ListenAndServe(context.Background(), server.ListenConfig{Addr: "127.0.0.1:0", Ready: func(a net.Addr) {
		fmt.Printf("%shttp://%s\n", killReady, a)
	}}))
}

// startChild re-executes the test binary as a server on store.
func startChild(t *testing.T, store, circuit string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServerSurvivesKill9$", "-test.count=1")
	cmd.Env = append(os.Environ(), killEnv+"="+store, killCircuitEnv+"="+circuit)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), killReady); ok {
				url <- u
			}
		}
		close(url)
	}()
	select {
	case u, ok := <-url:
		require.True(t, ok, "server child exited before listening")
		return cmd, u
	case <-time.After(30 * time.Second):
		t.Fatal("server child did not listen within 30 s")
	}
	return nil, ""
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 20*time.Second, 5*time.Millisecond, what)
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return st.Size()
}

// predictOK checks one encrypted prediction with keys against the plaintext
// circuit (float64 simulator).
func predictOK(t *testing.T, ctx context.Context, cl *client.Client, v *client.Verified, keys *client.Keys, full *circuit.Circuit, seed uint64) {
	t.Helper()
	r := mrand.New(mrand.NewPCG(seed, 1))
	px := make([]float64, 16)
	for j := range px {
		px[j] = r.Float64()
	}
	vecs, err := v.Skeleton.EncodeImages(px, 1, 4, 4)
	require.NoError(t, err)
	got, _, err := cl.Predict(ctx, v, keys, vecs, 1)
	require.NoError(t, err)
	sim, _, err := full.Simulate(vecs[0], circuit.SimOptions{})
	require.NoError(t, err)
	want, err := full.DecodeLogits([][]float64{sim}, 1)
	require.NoError(t, err)
	require.InDeltaSlice(t, want[0], got[0], 1e-4)
}

// A server process killed with SIGKILL in the middle of a whole key upload
// and of a chunk of a resumable one, then restarted on the same store:
// the key set uploaded before is served, the interrupted whole upload is
// not visible, and the resumable one continues from its staged offset.
func TestServerSurvivesKill9(t *testing.T) {
	if store := os.Getenv(killEnv); store != "" {
		serverChild(store, os.Getenv(killCircuitEnv))
		return
	}
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	store, circuitPath := filepath.Join(dir, "store"), filepath.Join(dir, "toy.circuit")
	data := toyCircuitFile(t, 4)
	require.NoError(t, os.WriteFile(circuitPath, data, 0o644))
	full, err := circuit.DecodeCircuit(data, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	child, url := startChild(t, store, circuitPath)
	cl, err := client.New(url, client.Options{})
	require.NoError(t, err)
	info, err := cl.Circuit(ctx, "")
	require.NoError(t, err)
	v, err := client.VerifyCircuit(info, client.Policy{AllowInsecure: true})
	require.NoError(t, err)
	var ks [3]*client.Keys // done, whole (killed), chunked (killed)
	for i := range ks {
		ks[i], err = client.EnsureKeys(filepath.Join(dir, fmt.Sprint("keys", i)), v, nil)
		require.NoError(t, err)
	}
	done, whole, chunked := ks[0], ks[1], ks[2]
	_, err = cl.UploadKeys(ctx, done.EvalPath, done.ID, nil)
	require.NoError(t, err)

	evWhole, err := os.ReadFile(whole.EvalPath)
	require.NoError(t, err)
	evChunked, err := os.ReadFile(chunked.EvalPath)
	require.NoError(t, err)
	require.Greater(t, len(evWhole), 1<<17)
	first := int64(1 << 16)
	total := int64(len(evChunked))

	// The first chunk completes.
	req, err := http.NewRequest(http.MethodPut, url+"/v1/keys/"+chunked.ID, strings.NewReader(string(evChunked[:first])))
	require.NoError(t, err)
	req.Header.Set("Content-Range", api.ContentRange{Start: 0, End: first - 1, Total: total}.String())
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	// The second chunk and a whole upload start, send part of their bytes, and stall.
	stall := func(id string, body []byte, hdr string) (*io.PipeWriter, <-chan error) {
		pr, pw := io.Pipe()
		req, err := http.NewRequest(http.MethodPut, url+"/v1/keys/"+id, pr)
		require.NoError(t, err)
		req.ContentLength = int64(len(body))
		if hdr != "" {
			req.Header.Set("Content-Range", hdr)
		}
		errc := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				err = fmt.Errorf("the stalled upload was answered %s", resp.Status)
			}
			errc <- err
		}()
		go func() { _, _ = pw.Write(body[:len(body)/2]) }()
		return pw, errc
	}
	rest := evChunked[first:]
	pwC, errC := stall(chunked.ID, rest, api.ContentRange{Start: first, End: total - 1, Total: total}.String())
	pwW, errW := stall(whole.ID, evWhole, "")
	defer pwC.Close()
	defer pwW.Close()
	staged := filepath.Join(store, "uploads", chunked.ID)
	sentC := first + int64(len(rest)/2)
	waitFor(t, "the second chunk reaches the staging file", func() bool { return fileSize(staged) == sentC })
	waitFor(t, "the whole upload reaches its temporary file", func() bool {
		tmps, _ := filepath.Glob(filepath.Join(store, "keys", ".put-"+whole.ID[:16]+"*"))
		return len(tmps) == 1 && fileSize(tmps[0]) > 0
	})

	require.NoError(t, child.Process.Kill()) // SIGKILL
	_ = child.Wait()
	// The client side gives up too (a transport blocked reading the body
	// does not notice the connection is gone).
	pwC.CloseWithError(errors.New("server killed"))
	pwW.CloseWithError(errors.New("server killed"))
	for _, errc := range []<-chan error{errC, errW} {
		select {
		case err := <-errc:
			require.Error(t, err, "the upload broke with the server")
		case <-time.After(20 * time.Second):
			t.Fatal("a stalled upload did not end with the server")
		}
	}

	// Restart on the same store.
	_, url = startChild(t, store, circuitPath)
	cl, err = client.New(url, client.Options{})
	require.NoError(t, err)
	st, err := cl.KeyStatus(ctx, done.ID)
	require.NoError(t, err)
	require.True(t, st.Complete, "the key set uploaded before the kill is served")
	predictOK(t, ctx, cl, v, done, full, 1)

	st, err = cl.KeyStatus(ctx, whole.ID)
	require.NoError(t, err)
	require.False(t, st.Complete, "the interrupted whole upload is not visible")
	require.Zero(t, st.Offset)
	_, _, err = cl.Predict(ctx, v, whole, [][]float64{make([]float64, 16)}, 1)
	var se *api.StatusError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, http.StatusNotFound, se.Status)
	require.Equal(t, api.KindUnknownKeys, se.Kind)

	st, err = cl.KeyStatus(ctx, chunked.ID)
	require.NoError(t, err)
	require.False(t, st.Complete)
	require.Equal(t, sentC, st.Offset, "the resumable upload continues from its staged offset")
	up, err := cl.UploadKeys(ctx, chunked.EvalPath, chunked.ID, nil)
	require.NoError(t, err)
	require.Equal(t, total-sentC, up.Sent, "only the missing bytes are sent")
	predictOK(t, ctx, cl, v, chunked, full, 2)

	// The whole upload is simply retried.
	up, err = cl.UploadKeys(ctx, whole.EvalPath, whole.ID, nil)
	require.NoError(t, err)
	require.Equal(t, up.Size, up.Sent)
	predictOK(t, ctx, cl, v, whole, full, 3)
}
