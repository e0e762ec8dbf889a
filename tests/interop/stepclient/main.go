// stepclient drives Cirrus with step-ca's own Go client library (smallstep/certificates/ca,
// Debian's golang-github-smallstep-certificates-dev, the 0.19.0 client), the way `step ca
// token/certificate/renew/revoke` do: fetch and decrypt the provisioner key with its password,
// mint a token, bootstrap trust from the token's root fingerprint, sign, renew over mTLS and with
// a token, rekey, and revoke over mTLS. It prints one JSON object with what it got.
//
// `stepclient deployed CA_URL FINGERPRINT PROVISIONER KID PASSWORD_FILE SUBJECT ROOT_OUT [EXTRA_ROOTS]`
// instead walks docs/deploy.md's client steps against a deployed address: `step ca bootstrap
// --ca-url CA_URL --fingerprint FINGERPRINT` (fetch /root/FINGERPRINT, check it, save it to ROOT_OUT,
// followed by EXTRA_ROOTS when given, as the documented bundle for a front end whose TLS certificate
// is not the CA's), then `step ca certificate` with that root file (provisioner key, token, sign).
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/smallstep/certificates/api"
	"github.com/smallstep/certificates/ca"
)

func fail(step string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", step, err)
	os.Exit(1)
}

func deployed(args []string) {
	if len(args) != 7 && len(args) != 8 {
		fail("usage", fmt.Errorf("stepclient deployed CA_URL FINGERPRINT PROVISIONER KID PASSWORD_FILE SUBJECT ROOT_OUT [EXTRA_ROOTS]"))
	}
	caURL, fp, name, kid, pwFile, subject, rootOut := args[0], args[1], args[2], args[3], args[4], args[5], args[6]
	// step ca bootstrap: fetch /root/FINGERPRINT without verifying TLS; Root checks the fingerprint.
	boot, err := ca.NewClient(caURL, ca.WithInsecure())
	if err != nil {
		fail("bootstrap", err)
	}
	root, err := boot.Root(fp)
	if err != nil {
		fail("bootstrap root", err)
	}
	bundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.RootPEM.Certificate.Raw})
	if len(args) == 8 {
		extra, err := os.ReadFile(args[7])
		if err != nil {
			fail("extra roots", err)
		}
		bundle = append(bundle, extra...)
	}
	if err := os.WriteFile(rootOut, bundle, 0o600); err != nil {
		fail("write root", err)
	}
	// step ca certificate: provisioner key from /provisioners, token, CSR, sign.
	pw, err := os.ReadFile(pwFile)
	if err != nil {
		fail("password", err)
	}
	password := []byte(strings.TrimRight(string(pw), "\r\n"))
	p, err := ca.NewProvisioner(name, kid, caURL, password, ca.WithRootFile(rootOut))
	if err != nil {
		fail("provisioner (encrypted key)", err)
	}
	token, err := p.Token(subject, subject)
	if err != nil {
		fail("token", err)
	}
	client, err := ca.NewClient(caURL, ca.WithRootFile(rootOut))
	if err != nil {
		fail("client", err)
	}
	req, _, err := ca.CreateSignRequest(token)
	if err != nil {
		fail("csr", err)
	}
	signed, err := client.Sign(req)
	if err != nil {
		fail("sign", err)
	}
	leaf := signed.ServerPEM.Certificate
	out := map[string]interface{}{
		"serial":   leaf.SerialNumber.String(),
		"chain":    len(signed.CertChainPEM),
		"dnsNames": leaf.DNSNames,
		"crl":      leaf.CRLDistributionPoints,
		"ocsp":     leaf.OCSPServer,
		"leafPEM":  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})),
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail("output", err)
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "deployed" {
		deployed(os.Args[2:])
		return
	}
	if len(os.Args) != 7 {
		fail("usage", fmt.Errorf("stepclient CA_URL ROOT PROVISIONER KID PASSWORD_FILE SUBJECT"))
	}
	caURL, root, name, kid, pwFile, subject := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6]
	pw, err := os.ReadFile(pwFile)
	if err != nil {
		fail("password", err)
	}
	password := []byte(strings.TrimRight(string(pw), "\r\n"))
	out := map[string]interface{}{}

	p, err := ca.NewProvisioner(name, kid, caURL, password, ca.WithRootFile(root))
	if err != nil {
		fail("provisioner (encrypted key)", err)
	}
	token, err := p.Token(subject, subject)
	if err != nil {
		fail("token", err)
	}
	client, err := ca.Bootstrap(token) // trust from the token's `sha` via GET /root/{sha}
	if err != nil {
		fail("bootstrap", err)
	}
	if h, err := client.Health(); err != nil || h.Status != "ok" {
		fail("health", err)
	}
	if roots, err := client.Roots(); err != nil || len(roots.Certificates) != 1 {
		fail("roots", err)
	}
	provs, err := client.Provisioners()
	if err != nil {
		fail("provisioners", err)
	}
	out["provisioners"] = len(provs.Provisioners)

	req, pk, err := ca.CreateSignRequest(token)
	if err != nil {
		fail("csr", err)
	}
	signed, err := client.Sign(req)
	if err != nil {
		fail("sign", err)
	}
	out["signed"] = signed.ServerPEM.SerialNumber.String()
	out["chain"] = len(signed.CertChainPEM)

	tlsCert, err := ca.TLSCertificate(signed, pk)
	if err != nil {
		fail("tls certificate", err)
	}
	pool := x509.NewCertPool()
	rootPEM, _ := os.ReadFile(root)
	pool.AppendCertsFromPEM(rootPEM)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	tr.TLSClientConfig.RootCAs = pool
	tr.TLSClientConfig.Certificates = append(tr.TLSClientConfig.Certificates, *tlsCert)
	renewed, err := client.Renew(tr) // mTLS, as `step ca renew` does by default
	if err != nil {
		fail("renew (mTLS)", err)
	}
	out["renewed"] = renewed.ServerPEM.SerialNumber.String()

	rekeyReq, newPK, err := ca.CreateCertificateRequest(subject, subject)
	if err != nil {
		fail("rekey csr", err)
	}
	rekeyed, err := client.Rekey(&api.RekeyRequest{CsrPEM: *rekeyReq}, tr)
	if err != nil {
		fail("rekey (mTLS)", err)
	}
	out["rekeyed"] = rekeyed.ServerPEM.SerialNumber.String()

	rekeyedTLS, err := ca.TLSCertificate(rekeyed, newPK)
	if err != nil {
		fail("rekeyed tls certificate", err)
	}
	tr2 := tr.Clone()
	tr2.TLSClientConfig.Certificates = []tls.Certificate{*rekeyedTLS}
	revoked, err := client.Revoke(&api.RevokeRequest{
		Serial: rekeyed.ServerPEM.SerialNumber.String(), ReasonCode: 4, Reason: "superseded", Passive: true,
	}, tr2)
	if err != nil {
		fail("revoke (mTLS)", err)
	}
	out["revoke"] = revoked.Status

	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		fail("output", err)
	}
}
