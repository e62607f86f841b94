module mfa

go 1.19
