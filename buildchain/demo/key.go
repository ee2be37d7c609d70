package demo

import (
	"bytes"
	"math/rand/v2"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// generateKey makes an armored, unprotected Ed25519 private key drawn
// from seed: a throwaway key for the demo's upstream repositories, the
// same for the same seed so that the ISO, which ships it, is reproducible.
func generateKey(seed uint64) ([]byte, error) {
	det := false
	cfg := &packet.Config{
		Algorithm:                             packet.PubKeyAlgoEdDSA,
		Rand:                                  rand.NewChaCha8(seedBytes(seed, "key")),
		Time:                                  func() time.Time { return fixtureTime },
		NonDeterministicSignaturesViaNotation: &det,
	}
	e, err := openpgp.NewEntity("MetalK8s demo upstream", "throwaway key of go run mage.go demo", "demo@metalk8s.invalid", cfg)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := e.SerializePrivateWithoutSigning(w, cfg); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}
