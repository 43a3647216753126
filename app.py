"""Latent Lab — router and home page.

Start-up stays light: no torch, no umap, no models here; each page imports what it needs
when it is first opened. Run with `streamlit run app.py`.
"""

import streamlit as st

from ui.owners import is_operator
from ui.sidebar import shared_sidebar

st.set_page_config(page_title="Latent Lab", page_icon=":material/explore:", layout="wide")

GUIDE = [
    ("app_pages/train_load.py", "Train or load", ":material/model_training:",
     "train any registered kind (AE, AAE with a uniform or Gaussian prior, beta-VAE, WAE-MMD), or load/upload a checkpoint and check its reconstructions."),
    ("app_pages/your_data.py", "Your data", ":material/upload_file:", "upload your own data set (.npz, .csv, a zip of image folders, an IDX pair); private to your browser."),
    ("app_pages/latent_map.py", "Latent map & holes", ":material/scatter_plot:",
     "see the encoded dataset (PCA/UMAP), select points to view their images, and compare the 'holes' of four models."),
    ("app_pages/attributes.py", "Attribute vectors", ":material/trending_flat:",
     "v = mean(A) − mean(B) from two classes or map selections: how well it separates them, and sample + t·v decoded as you drag (analogies)."),
    ("app_pages/beta_dims.py", "Beta & dimensions", ":material/tune:",
     "beta-VAE maps at beta = 0.5 … 16 side by side (KL against reconstruction), and a traversal grid: what each latent dimension does."),
    ("app_pages/interpolation.py", "Interpolation", ":material/linear_scale:",
     "walk between two samples in latent space (LSI) with a lambda slider, next to pixel mixup; try the kNN/noise/prior samplers."),
    ("app_pages/isda.py", "ISDA directions", ":material/explore:",
     "the class covariance of the latents, its eigen-directions as sliders, and ISDA's bound against Monte-Carlo."),
    ("app_pages/fewshot.py", "Few-shot lab", ":material/science:",
     "run small few-shot experiments with and without augmentation and compare accuracy and F1."),
    ("app_pages/saliency.py", "Saliency", ":material/visibility:",
     "where a few-shot classifier looks (Saliency, SmoothGrad, Integrated Gradients), with and without augmentation."),
]


def home() -> None:
    sel = shared_sidebar("home")
    st.title("Latent Lab")
    st.markdown(
        "Explore the latent spaces of autoencoders built **for data augmentation**. "
        "An autoencoder squeezes each image into a short code *z*; new training samples can be made by "
        "moving, mixing or sampling codes and decoding them. Whether that works depends on how the latent "
        "space is filled — an adversarial autoencoder with a **uniform prior** leaves no 'holes' between "
        "classes (Liu et al. 2018), a beta-VAE trades sharpness for smoothness (Bonn slides 2023), and ISDA "
        "augments along class-specific covariance directions (Wang et al. 2019)."
    )
    st.markdown(f"**Now:** dataset `{sel.dataset}`, checkpoint "
                f"`{sel.entry.name if sel.entry else 'none'}` — change both in the sidebar; every page uses them.")
    st.subheader("Pages")
    for path, title, icon, line in GUIDE:
        st.page_link(path, label=f"**{title}** — {line}", icon=icon)
    st.caption("Shipped checkpoints: MNIST-5k (500 images per class), AE / AAE-Gaussian / AAE-uniform / "
               "beta-VAE at z = 2 and z = 16, WAE-MMD at z = 2. Everything runs on a CPU.")


pages = [st.Page(home, title="Home", icon=":material/home:", default=True)]
pages += [st.Page(path, title=title, icon=icon) for path, title, icon, _ in GUIDE]
if is_operator():  # LATENT_LAB_OPERATOR_TOKEN set and ?operator=TOKEN in the URL
    pages.append(st.Page("app_pages/operator.py", title="Operator", icon=":material/admin_panel_settings:"))
st.navigation(pages).run()
