"""rdm_pmf: the class-conditional pixel MeanFlow (pMF) one-step generator for ImageNet."""
