"""Where GX keeps validation results and Data Docs when several workers share them: S3."""
