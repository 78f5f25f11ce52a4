package he

import (
	"fmt"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// Client bundles what the key owner needs to encode, encrypt, decrypt and
// decode for one parameter set. It is not safe for concurrent use; use
// ShallowCopy for another goroutine.
type Client struct {
	params    *Parameters
	encoder   *hefloat.Encoder
	encryptor *rlwe.Encryptor
	decryptor *rlwe.Decryptor
}

// NewClient builds a client from parameters and a secret key made for them.
// Encryption uses the secret key (smaller fresh noise than public-key
// encryption; the client owns the key anyway).
func NewClient(p *Parameters, sk *SecretKey) (*Client, error) {
	if p == nil || sk == nil {
		return nil, fmt.Errorf("new client: nil parameters or secret key")
	}
	if sk.params.Fingerprint() != p.Fingerprint() {
		return nil, fmt.Errorf("new client: secret key was made for %s, not %s", sk.params, p)
	}
	hp := p.HE()
	return &Client{
		params:    p,
		encoder:   hefloat.NewEncoder(hp),
		encryptor: rlwe.NewEncryptor(hp, sk.sk),
		decryptor: rlwe.NewDecryptor(hp, sk.sk),
	}, nil
}

// ShallowCopy returns a client sharing keys with c but with its own buffers.
func (c *Client) ShallowCopy() *Client {
	return &Client{params: c.params, encoder: c.encoder.ShallowCopy(), encryptor: c.encryptor.ShallowCopy(), decryptor: c.decryptor.ShallowCopy()}
}

// Parameters returns the client's parameters.
func (c *Client) Parameters() *Parameters { return c.params }

// Encoder returns the client's Lattigo encoder; for packages under he/ only.
func (c *Client) Encoder() *hefloat.Encoder { return c.encoder }

// Encryptor returns the client's Lattigo encryptor; for packages under he/
// only.
func (c *Client) Encryptor() *rlwe.Encryptor { return c.encryptor }

// Decryptor returns the client's Lattigo decryptor; for packages under he/
// only.
func (c *Client) Decryptor() *rlwe.Decryptor { return c.decryptor }

// EncryptReal encodes values (at most Slots(); the rest are zero) at the
// given level and the default scale, and encrypts them. level < 0 means
// MaxLevel.
func (c *Client) EncryptReal(values []float64, level int) (*Ciphertext, error) {
	return encryptSlots(c, values, level)
}

// DecryptReal decrypts and decodes ct and returns the real parts of all slots.
func (c *Client) DecryptReal(ct *Ciphertext) ([]float64, error) {
	return decryptSlots[float64](c, ct)
}

// EncryptComplex is EncryptReal for complex slot values (standard ring).
func (c *Client) EncryptComplex(values []complex128, level int) (*Ciphertext, error) {
	return encryptSlots(c, values, level)
}

// DecryptComplex decrypts and decodes ct into complex slot values.
func (c *Client) DecryptComplex(ct *Ciphertext) ([]complex128, error) {
	return decryptSlots[complex128](c, ct)
}

// encryptSlots checks the slot count and level, encodes and encrypts.
func encryptSlots[T float64 | complex128](c *Client, values []T, level int) (*Ciphertext, error) {
	hp := c.params.HE()
	if len(values) > hp.MaxSlots() {
		return nil, fmt.Errorf("encrypt: %d values > %d slots", len(values), hp.MaxSlots())
	}
	if level < 0 {
		level = hp.MaxLevel()
	}
	if level > hp.MaxLevel() {
		return nil, fmt.Errorf("encrypt: level %d > MaxLevel %d", level, hp.MaxLevel())
	}
	pt := hefloat.NewPlaintext(hp, level)
	if err := c.encoder.Encode(values, pt); err != nil {
		return nil, fmt.Errorf("encrypt: encode: %w", err)
	}
	ct, err := c.encryptor.EncryptNew(pt)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	return ct, nil
}

// decryptSlots validates ct against the parameters, decrypts and decodes all slots.
func decryptSlots[T float64 | complex128](c *Client, ct *Ciphertext) ([]T, error) {
	if err := CheckCiphertext(c.params, ct); err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	out := make([]T, c.params.Slots())
	if err := c.encoder.Decode(c.decryptor.DecryptNew(ct), out); err != nil {
		return nil, fmt.Errorf("decrypt: decode: %w", err)
	}
	return out, nil
}

// NewEncoder returns a Lattigo encoder for p (for the server side, which
// encodes plaintext weights); for packages under he/ only.
func NewEncoder(p *Parameters) *hefloat.Encoder { return hefloat.NewEncoder(p.HE()) }
