// Package testpki makes certificate authorities and certificates for tests: servers on
// 127.0.0.1 (or localhost) and their clients, as tls.Certificates and as PEM files.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority valid from an hour ago for a day.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewCA makes a CA named cn.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := template(t, cn)
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse CA certificate: %v", err)
	}
	return &CA{Cert: cert, Key: key}
}

// PEM is the CA's certificate in PEM.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// Pool is a certificate pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue signs a certificate named cn for usage, valid for 127.0.0.1 and localhost.
func (ca *CA) Issue(t testing.TB, cn string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	return sign(t, cn, usage, ca.Cert, ca.Key)
}

// SelfSigned makes a self-signed server certificate named cn, valid for 127.0.0.1 and localhost.
func SelfSigned(t testing.TB, cn string) tls.Certificate {
	t.Helper()
	return sign(t, cn, x509.ExtKeyUsageServerAuth, nil, nil)
}

// WriteFiles writes cert's leaf certificate and private key as PEM (CERTIFICATE, and PKCS #8
// PRIVATE KEY).
func WriteFiles(t testing.TB, cert tls.Certificate, certFile, keyFile string) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	writePEM(t, certFile, "CERTIFICATE", cert.Certificate[0])
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
}

// PKI is a CA with a server certificate (okp-server) and a client certificate (okp-client),
// also written as PEM files to a test's temporary directory.
type PKI struct {
	*CA
	Dir                           string
	CAFile                        string // the CA certificate
	CertFile, KeyFile             string // the server's
	ClientCertFile, ClientKeyFile string
	Pool                          *x509.CertPool // holds the CA
	Server, Client                tls.Certificate
}

// New makes a PKI.
func New(t testing.TB) *PKI {
	t.Helper()
	k := &PKI{CA: NewCA(t, "okp test CA"), Dir: t.TempDir()}
	k.Pool = k.CA.Pool()
	k.CAFile = filepath.Join(k.Dir, "ca.pem")
	writePEM(t, k.CAFile, "CERTIFICATE", k.Cert.Raw)
	k.CertFile, k.KeyFile, k.Server = k.IssueFiles(t, "server", "okp-server", x509.ExtKeyUsageServerAuth)
	k.ClientCertFile, k.ClientKeyFile, k.Client = k.IssueFiles(t, "client", "okp-client", x509.ExtKeyUsageClientAuth)
	return k
}

// IssueFiles issues a certificate named cn and writes it to name.pem and name-key.pem in Dir.
func (k *PKI) IssueFiles(t testing.TB, name, cn string, usage x509.ExtKeyUsage) (certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	cert = k.Issue(t, cn, usage)
	certFile, keyFile = filepath.Join(k.Dir, name+".pem"), filepath.Join(k.Dir, name+"-key.pem")
	WriteFiles(t, cert, certFile, keyFile)
	return certFile, keyFile, cert
}

// sign makes a leaf certificate signed by parent (nil: self-signed).
func sign(t testing.TB, cn string, usage x509.ExtKeyUsage, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	key := newKey(t)
	tmpl := template(t, cn)
	tmpl.KeyUsage, tmpl.ExtKeyUsage = x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{usage}
	tmpl.IPAddresses, tmpl.DNSNames = []net.IP{net.ParseIP("127.0.0.1")}, []string{"localhost"}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatalf("create certificate %s: %v", cn, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate %s: %v", cn, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// template is a certificate named cn with a random serial, valid from an hour ago for a day.
func template(t testing.TB, cn string) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatalf("serial: %v", err)
	}
	return &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return key
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}
