package he

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestKeySpecResolve(t *testing.T) {
	p := tinyParams(t, "tiny10", 10)
	hp := p.HE()
	els, err := KeySpec{Rotations: []int{1, 2, 1, 0, -1}, Conjugation: true, GaloisElements: []uint64{hp.GaloisElement(2)}}.ResolveGaloisElements(p)
	require.NoError(t, err)
	want := sortedUint64([]uint64{hp.GaloisElement(1), hp.GaloisElement(2), hp.GaloisElement(-1), hp.GaloisElementForComplexConjugation()})
	require.Equal(t, want, els)
	_, err = KeySpec{GaloisElements: []uint64{4}}.ResolveGaloisElements(p)
	require.Error(t, err)
	_, err = KeySpec{GaloisElements: []uint64{uint64(4*p.N()) + 1}}.ResolveGaloisElements(p)
	require.Error(t, err)
	_, _, err = GenerateKeys(p, KeySpec{Bootstrapping: true})
	require.ErrorContains(t, err, "no bootstrapping parameters")
}

func TestEvaluationKeysCheckCovers(t *testing.T) {
	p := tinyParams(t, "tiny10", 10)
	_, evk, err := GenerateKeys(p, KeySpec{Relinearization: true, Rotations: []int{1, 2}})
	require.NoError(t, err)
	require.NoError(t, evk.CheckCovers(KeySpec{Relinearization: true, Rotations: []int{2}}))
	err = evk.CheckCovers(KeySpec{Rotations: []int{1, 3}, Conjugation: true, Bootstrapping: false})
	require.ErrorContains(t, err, "Galois keys")
	_, evk2, err := GenerateKeys(p, KeySpec{Rotations: []int{1}})
	require.NoError(t, err)
	require.ErrorContains(t, evk2.CheckCovers(KeySpec{Relinearization: true, Bootstrapping: true}), "relinearization key, bootstrapping keys")
	_, err = NewBootstrapper(p, evk)
	require.ErrorContains(t, err, "no bootstrapping keys")
	pb, err := ParametersFromPreset(PresetTestBootN13)
	require.NoError(t, err)
	_, err = NewBootstrapper(pb, evk)
	require.Error(t, err)
	_, err = NewSecretKeyBootstrapper(pb, nil)
	require.Error(t, err)
}
