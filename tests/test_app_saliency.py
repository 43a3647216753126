"""AppTest: the Saliency page — two classifiers (without / with an augmentation), their maps, saliencymix tiles."""

from app_support import app_env, app_checkpoints, assert_clean, new_app  # noqa: F401

PAGE = "app_pages/saliency.py"



def test_renders_digits_with_both_classifiers(app_env):
    at = new_app(PAGE, query={"dataset": "digits"})
    assert_clean(at)
    assert at.title[0].value == "Saliency"
    # per classifier: one row of images + three rows of maps; then the saliencymix examples
    assert len(at.image) == 2 * 4 + 1
    captions = [c for img in at.image[:4] for c in (img.captions or [])]
    assert any("→" in c for c in captions)                                     # "true → predicted (confidence)"
    assert "Without augmentation" in " ".join(m.value for m in at.markdown)
    assert "With saliencymix" in " ".join(m.value for m in at.markdown)
    table = at.dataframe[0].value
    assert list(table.columns) == ["none", "saliencymix"] and len(table) == 3


def test_other_augmentation_and_fewer_images(app_env):
    at = new_app(PAGE, query={"dataset": "digits"})
    at.selectbox(key="w_sal_method").set_value("mixup")
    at.slider(key="w_sal_n").set_value(3)
    at.select_slider(key="w_sal_steps").set_value(50)
    at.button[0].click().run()
    assert_clean(at)
    assert "With mixup" in " ".join(m.value for m in at.markdown)
    assert list(at.dataframe[0].value.columns) == ["none", "mixup"]
    assert len(at.image[0].value) == 3


def test_a_table_dataset_asks_for_images(app_env):
    at = new_app(PAGE, query={"dataset": "wine"})
    assert not at.exception
    assert at.info and "image" in at.info[0].value
